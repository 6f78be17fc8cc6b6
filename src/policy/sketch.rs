//! PLACEHOLDER (being written): the frequency sketch.
