"""Model bundles: the schema that crosses from the workstation (manifest), a verified bundle
directory, and installing signed bundle files: checks, the store, USB sticks."""
