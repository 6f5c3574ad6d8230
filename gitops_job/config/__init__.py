"""The repo config (gitops.yaml) as frozen dataclasses, and the one rule for every path gitops-job reads."""
