"""The processing core: batch logic shared by the agents, the in-process (offline) run
and replays. Member and product state, the processors, the batchers (over small
protocols, see :mod:`memberstream.core.batching`), dead letters. No Faust, no aiokafka."""
