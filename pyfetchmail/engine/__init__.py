"""One poll of one account: context, pure policy, session executor, delivery of one
message, deletions, state records and fetchmail's report lines."""

__all__: list[str] = []
