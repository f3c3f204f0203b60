"""What every process stands on: settings, databases, the gRPC server runtime, channels,
fault injection, and the cluster launcher that starts the bookstore as OS processes."""
