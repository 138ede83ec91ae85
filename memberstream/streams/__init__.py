"""The Faust wiring and Kafka I/O: the app, its agents and tables, the output sink over
Faust's producer, offset and commit guards, topic checks, the worker process. Builds on
:mod:`memberstream.core`; nothing below imports it."""
