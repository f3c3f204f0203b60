"""Generated gRPC and protobuf code for the bookstore contracts (``make proto``); do not edit."""
