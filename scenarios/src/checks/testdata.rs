//! Hand-made evidence for the checkers' tests.
