"""What a run tells the world outside the cluster and GitHub after it ends: metrics pushed to a Pushgateway
(``metrics``), and events built from its results (``events``) delivered to the receivers of gitops.yaml
(``receivers``). Never fails a run: a failure comes back as a warning."""
