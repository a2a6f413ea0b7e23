#!/usr/bin/env bash
# Prints the path of a Python 3.12 interpreter (the Lambda runtime's version), or explains what is missing.
# Order: $PYTHON312 if set, a working python3.12 on PATH, then pyenv's newest installed 3.12.x.
set -euo pipefail
if [ -n "${PYTHON312:-}" ]; then echo "$PYTHON312"; exit 0; fi
if command -v python3.12 >/dev/null 2>&1 && python3.12 -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
  command -v python3.12; exit 0
fi
if command -v pyenv >/dev/null 2>&1; then
  v=$(pyenv versions --bare 2>/dev/null | grep -E '^3\.12(\.[0-9]+)?$' | sort -V | tail -n 1 || true)
  if [ -n "$v" ]; then echo "$(pyenv root)/versions/$v/bin/python3.12"; exit 0; fi
  echo "crmsync needs Python 3.12 (the Lambda runtime): run 'pyenv install 3.12' or set PYTHON312=/path/to/python3.12" >&2
  exit 1
fi
echo "crmsync needs Python 3.12 (the Lambda runtime): install it, or set PYTHON312=/path/to/python3.12" >&2
exit 1
