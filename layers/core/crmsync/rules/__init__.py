"""Automation rules and risk scoring: rule files (config), conditions (engine), customer aggregates (facts), the risk
score (risk), carrying decisions out (automation) and the dry run (dryrun). See config/rules/default.yaml."""
