"""Task kinds: what classification and generation (instruction -> answer) jobs do differently.
`registry.task_kind(task)` gives a job's kind; `base.TaskKind` is what each one supplies."""
