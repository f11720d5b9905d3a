"""The registry as a Swarm service: inspect nodes, service and tasks; deploy and converge."""
