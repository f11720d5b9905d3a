"""Jobs: the runner and its store, the job kinds, and the setup and rotation jobs with their checks."""
