"""One pytest session's workspace: settings resolved to datasets, models, pairs and families."""
