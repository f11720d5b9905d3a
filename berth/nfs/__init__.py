"""The registry's NFS storage: mount tables, client counters, probes that cannot hang the caller, rules."""
