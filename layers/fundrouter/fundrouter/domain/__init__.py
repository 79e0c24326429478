"""Pure domain: no boto3, no Lambda types, no environment."""
