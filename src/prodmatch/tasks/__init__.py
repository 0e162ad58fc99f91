"""The tasks: what each entry point runs, and the wiring between the composed config and the objects it needs."""
