"""What a run tells the world outside the cluster and GitHub after it ends: metrics pushed to a Pushgateway (and, to
come, the notification receivers of gitops.yaml). Never fails a run: a failure comes back as a warning."""
