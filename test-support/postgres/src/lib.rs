//! A private PostgreSQL cluster for the tests (being written).
