"""The operator commands (`status`, `events`, `orphans`): they read and report, and cancel nothing."""
