"""Unit tests of the API gateway: the real FastAPI app in front of fake gRPC stubs."""
