"""The command line: flags and GITOPS_JOB_* variables in, exit codes out (docs/design.md, *Packages*)."""
