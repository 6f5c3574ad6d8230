"""A real Kubernetes control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok) built from
published Go modules and run on loopback, for gitops-job's tests and demo. Not part of the runtime package."""
