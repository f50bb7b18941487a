"""The monitoring and deployment configuration, checked with the field's own tools.

promtool (Debian's prometheus), kustomize and kubernetes-validate run here; no broker.
"""
