//! A job's chain of transforms, run in order as one [`Transform`].

use sluice_core::record::Record;
use sluice_core::transform::{Outcome, Transform, TransformError};

/// Transforms applied in order. Itself a [`Transform`]: one outcome per original input.
///
/// The outputs of one stage are the inputs of the next. An input whose outputs are all dropped
/// is [`Outcome::Dropped`]; if any of its outputs fails in a later stage, the whole input is
/// [`Outcome::Failed`] (it goes to the dead-letter sink as it entered the chain) with the
/// stage's name in the reason. Outputs always carry their original input's position.
pub struct Chain {
    name: String,
    stages: Vec<Box<dyn Transform>>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.stages.iter().map(|s| s.name()).collect();
        f.debug_struct("Chain").field("stages", &names).finish()
    }
}

/// Where an input stands while it moves through the chain.
enum State {
    /// Still flowing: its current records are `records[start..end]` of the stage's input.
    Flowing {
        start: usize,
        end: usize,
    },
    Dropped,
    Failed(String),
}

impl Chain {
    /// A chain of `stages`, named by joining their names with `→`.
    pub fn new(stages: Vec<Box<dyn Transform>>) -> Self {
        let name = stages
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join("→");
        Self { name, stages }
    }

    /// The stages, in order.
    pub fn stages(&self) -> &[Box<dyn Transform>] {
        &self.stages
    }
}

impl Transform for Chain {
    fn name(&self) -> &str {
        &self.name
    }

    fn process(&mut self, records: &[Record]) -> Result<Vec<Outcome>, TransformError> {
        let Some((first, rest)) = self.stages.split_first_mut() else {
            return Ok(records
                .iter()
                .map(|r| Outcome::Ok(vec![r.clone()]))
                .collect());
        };
        // The first stage reads the caller's slice directly: no copy.
        let mut states = Vec::with_capacity(records.len());
        let mut current = Vec::with_capacity(records.len());
        for outcome in first.process(records)? {
            states.push(settle(outcome, &mut current, first.name()));
        }
        for stage in rest {
            if current.is_empty() {
                break;
            }
            let outcomes = stage.process(&current)?;
            let mut next = Vec::with_capacity(current.len());
            let mut outcomes = outcomes.into_iter();
            for state in states.iter_mut() {
                let State::Flowing { start, end } = *state else {
                    continue;
                };
                let new_start = next.len();
                let mut failed = None;
                for outcome in outcomes.by_ref().take(end - start) {
                    match outcome {
                        Outcome::Ok(out) => next.extend(out),
                        Outcome::Dropped => {}
                        Outcome::Failed(reason) => {
                            failed.get_or_insert_with(|| format!("{}: {reason}", stage.name()));
                        }
                    }
                }
                *state = match failed {
                    Some(reason) => {
                        next.truncate(new_start);
                        State::Failed(reason)
                    }
                    None if next.len() == new_start => State::Dropped,
                    None => State::Flowing {
                        start: new_start,
                        end: next.len(),
                    },
                };
            }
            current = next;
        }
        let mut current = current.into_iter();
        Ok(states
            .into_iter()
            .map(|state| match state {
                State::Flowing { start, end } => {
                    Outcome::Ok(current.by_ref().take(end - start).collect())
                }
                State::Dropped => Outcome::Dropped,
                State::Failed(reason) => Outcome::Failed(reason),
            })
            .collect())
    }
}

/// Fold a first-stage outcome into a state, appending its outputs to `current`.
fn settle(outcome: Outcome, current: &mut Vec<Record>, stage: &str) -> State {
    match outcome {
        Outcome::Ok(out) if out.is_empty() => State::Dropped,
        Outcome::Ok(out) => {
            let start = current.len();
            current.extend(out);
            State::Flowing {
                start,
                end: current.len(),
            }
        }
        Outcome::Dropped => State::Dropped,
        Outcome::Failed(reason) => State::Failed(format!("{stage}: {reason}")),
    }
}
