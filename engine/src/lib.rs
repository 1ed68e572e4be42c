//! A generic, incremental task engine. It knows nothing of services.
