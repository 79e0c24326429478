"""DynamoDB adapters. The only package that speaks DynamoDB; everything above it
speaks the domain."""
