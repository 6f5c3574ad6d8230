"""The pull-request glue: the GitHub client (the only one) and what --github adds around plan and apply."""
