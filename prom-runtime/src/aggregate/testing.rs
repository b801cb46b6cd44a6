//! A given/when/then test kit for aggregates, no store needed: `given` past events, `when` a
//! command (the decide function `handle` would run), `then` the events it must produce or
//! `then_error` the error it must return. Failures say which event differed.
//!
//! ```ignore
//! account::STREAM
//!     .given::<Balance>([opened("42"), deposited("42", 100)])
//!     .when(|state| withdraw(state, "42", 150))
//!     .then_error(BankError::Insufficient { balance: 100, asked: 150 });
//! ```

use super::{Aggregate, Stream};
use std::fmt::Debug;

impl<A: Aggregate, S: Default + Send + 'static> Stream<A, S> {
    /// Starts a test: the state is the fold of `events`, as loading a stream of them gives.
    pub fn given(&self, events: impl IntoIterator<Item = A::Event>) -> Given<A, S> {
        let history: Vec<A::Event> = events.into_iter().collect();
        let mut state = S::default();
        self.fold(&mut state, &history);
        Given { stream: self.clone(), state, given: history.len() }
    }
}

/// The state built from past events, waiting for a command.
#[must_use = "a test needs `.when(...)` and `.then(...)`"]
pub struct Given<A: Aggregate, S> {
    stream: Stream<A, S>,
    state: S,
    given: usize,
}

impl<A: Aggregate, S: Default + Send + 'static> Given<A, S> {
    /// Runs the command's decide step against the state.
    pub fn when<F, E>(self, decide: F) -> When<A, S, E>
    where
        F: FnOnce(&S) -> Result<Vec<A::Event>, E>,
    {
        let result = decide(&self.state);
        When { stream: self.stream, state: self.state, given: self.given, result }
    }

    /// The state the given events fold into.
    pub fn state(&self) -> &S {
        &self.state
    }
}

/// A command's outcome, waiting for its assertion.
#[must_use = "a test needs `.then(...)`, `.then_error(...)` or `.then_state(...)`"]
pub struct When<A: Aggregate, S, E> {
    stream: Stream<A, S>,
    state: S,
    given: usize,
    result: Result<Vec<A::Event>, E>,
}

impl<A, S, E> When<A, S, E>
where
    A: Aggregate,
    A::Event: Debug + PartialEq,
    S: Default + Send + 'static,
    E: Debug,
{
    /// Asserts that the command produced exactly `expected`, in order; panics naming the first
    /// event that differs, or the error the command returned instead.
    #[track_caller]
    pub fn then(self, expected: impl IntoIterator<Item = A::Event>) {
        let expected: Vec<A::Event> = expected.into_iter().collect();
        match &self.result {
            Ok(produced) => {
                if let Some(difference) = event_difference(&expected, produced) {
                    panic!("`{}` after {} given events: {difference}", A::NAME, self.given);
                }
            }
            Err(error) => panic!(
                "`{}` after {} given events: expected {} events, but the command was rejected: {error:?}",
                A::NAME,
                self.given,
                expected.len()
            ),
        }
    }

    /// Asserts that the command was rejected with `expected`.
    #[track_caller]
    pub fn then_error(self, expected: E)
    where
        E: PartialEq,
    {
        match &self.result {
            Err(error) if *error == expected => {}
            Err(error) => {
                panic!(
                    "`{}`: the command was rejected with\n  {error:?}\nbut the test expects\n  {expected:?}",
                    A::NAME
                )
            }
            Ok(produced) => panic!(
                "`{}`: the test expects the error\n  {expected:?}\nbut the command produced {} events: {produced:?}",
                A::NAME,
                produced.len()
            ),
        }
    }

    /// Asserts that the command was rejected with an error `check` accepts.
    #[track_caller]
    pub fn then_error_matches(self, check: impl FnOnce(&E) -> bool) {
        match &self.result {
            Err(error) if check(error) => {}
            Err(error) => {
                panic!("`{}`: the command was rejected with an unexpected error: {error:?}", A::NAME)
            }
            Ok(produced) => panic!(
                "`{}`: the test expects an error, but the command produced {} events: {produced:?}",
                A::NAME,
                produced.len()
            ),
        }
    }

    /// Asserts on the state after the produced events are folded in (panics if the command was
    /// rejected).
    #[track_caller]
    pub fn then_state(self, check: impl FnOnce(&S)) {
        match self.result {
            Ok(produced) => {
                let mut state = self.state;
                self.stream.fold(&mut state, &produced);
                check(&state);
            }
            Err(error) => panic!("`{}`: the command was rejected: {error:?}", A::NAME),
        }
    }

    /// The command's outcome, for assertions of your own.
    pub fn result(self) -> Result<Vec<A::Event>, E> {
        self.result
    }
}

/// Where `produced` differs from `expected`: the first differing event, or the missing or
/// extra ones.
fn event_difference<T: Debug + PartialEq>(expected: &[T], produced: &[T]) -> Option<String> {
    if let Some(at) = expected.iter().zip(produced).position(|(e, p)| e != p) {
        return Some(format!(
            "event {} of {} differs:\n  expected: {:?}\n  produced: {:?}",
            at + 1,
            expected.len(),
            expected[at],
            produced[at]
        ));
    }
    match expected.len().cmp(&produced.len()) {
        std::cmp::Ordering::Equal => None,
        std::cmp::Ordering::Greater => Some(format!(
            "expected {} events, the command produced {}; missing: {:?}",
            expected.len(),
            produced.len(),
            &expected[produced.len()..]
        )),
        std::cmp::Ordering::Less => Some(format!(
            "expected {} events, the command produced {}; extra: {:?}",
            expected.len(),
            produced.len(),
            &produced[expected.len()..]
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::event_difference;

    #[test]
    fn the_difference_names_the_first_differing_event_or_the_missing_and_extra_ones() {
        assert_eq!(event_difference(&[1, 2], &[1, 2]), None);
        assert_eq!(
            event_difference(&[1, 2, 3], &[1, 5, 3]).as_deref(),
            Some("event 2 of 3 differs:\n  expected: 2\n  produced: 5")
        );
        assert_eq!(
            event_difference(&[1, 2], &[1]).as_deref(),
            Some("expected 2 events, the command produced 1; missing: [2]")
        );
        assert_eq!(
            event_difference(&[1], &[1, 9]).as_deref(),
            Some("expected 1 events, the command produced 2; extra: [9]")
        );
    }
}
