"""Table and queue storage: repositories and queue senders over the Azure Storage SDKs."""
