"""Agency's shared loop runtime and the API models every component speaks."""

__version__ = "0.1.0"
