"""`netfate chaos`: faults, Jepsen's way (issue #16). A seeded random workload of logins,
roams, idles, chain edits and NF updates runs on the testbed (`workload`) while a nemesis
kill -9s one of the testbed's recorded processes at a random moment and restarts it
(`nemesis`); a checker then verifies from the outside that the platform converged (`checker`).
`runner.run_chaos` ties them together, one fresh testbed per run.
"""
