"""The running agent: every service in one task group, the daemon around it, model hot swap
with probation, and detector state across restarts."""
