"""Each stack (plain YAML, Jinja2, Kustomize, Helm, ${VAR}) into objects that remember their file and line."""
