"""Image automation: which tag a policy chooses (``policy``), where a repository declares an image (``markers``) and
how that one value is rewritten without touching the rest of the file (``setters``); Flux v1 workload annotations
(``annotations``). Pure: no registry, no git."""
