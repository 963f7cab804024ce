//! Placeholder: filled in by the service-kit work (issue 3).
