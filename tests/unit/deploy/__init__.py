"""Deployment files: docker-compose.yml, the Dockerfile, infra/k8s; checked without a Docker engine."""
