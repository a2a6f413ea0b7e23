"""One module per webhook source: verify the signature, parse the payload, convert to canonical models."""
