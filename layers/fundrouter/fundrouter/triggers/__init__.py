"""What the stream and schedule triggers hand a function, turned into calls of the
services, and the services' reports turned into logs and metrics. The HTTP trigger's
counterpart is fundrouter.http."""
