"""The detection catalog: strict models, a loader that keeps YAML line marks, and lint checks."""
