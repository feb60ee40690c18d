//! A job's transforms applied in order: the one implementation of the chain and its
//! dead-letter rule, used by the runtime and by every tool that runs transforms.
//!
//! The rule: an input record is the unit. Each output of every stage carries its original
//! input's position (stamped here, whatever the plugin returned). An input whose outputs are all
//! dropped (or which produced none) is [`Fate::Dropped`]. If a stage fails any output of an
//! input — a per-record failure, a failed batch call, or a malformed answer — the whole input
//! fails: none of its outputs go on, and the input goes to the dead-letter sink as it entered the
//! chain, with the stage's name and the reason. So an input is written, dropped or
//! dead-lettered, never part of each, and a replay after a crash decides the same way.

use crate::record::Record;
use crate::transform::{Outcome, Transform, TransformError, TransformErrorKind};

/// What the chain made of one input record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Its outputs, `Processed::records[range]` (one or more, each with the input's position).
    Written(std::ops::Range<usize>),
    /// Filtered out.
    Dropped,
    /// Failed in `stage`: the input is dead-lettered with `reason`.
    Failed {
        /// The transform that failed it.
        stage: String,
        /// Why.
        reason: String,
    },
}

/// The result of a batch: every output in input order, and one [`Fate`] per input. The outputs
/// stay in one vector: no allocation per record on the hot path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Processed {
    /// Every record to write, in input order.
    pub records: Vec<Record>,
    /// One per input, in input order.
    pub fates: Vec<Fate>,
}

/// Transforms applied in order.
pub struct Chain {
    stages: Vec<Box<dyn Transform>>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain")
            .field("stages", &self.names())
            .finish()
    }
}

/// Where an input stands while it moves through the chain.
enum State {
    /// Still flowing: its current records are `current[start..end]`.
    Flowing {
        start: usize,
        end: usize,
    },
    Dropped,
    Failed {
        stage: String,
        reason: String,
    },
}

impl Chain {
    /// A chain of `stages`, applied in order.
    pub fn new(stages: Vec<Box<dyn Transform>>) -> Self {
        Self { stages }
    }

    /// True when there are no transforms (records pass unchanged).
    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    /// The stages' names, in order.
    pub fn names(&self) -> Vec<&str> {
        self.stages.iter().map(|s| s.name()).collect()
    }

    /// Run `records` through every stage: exactly one [`Fate`] per input, in input order.
    pub fn process(&mut self, records: &[Record]) -> Processed {
        let Some((first, rest)) = self.stages.split_first_mut() else {
            return Processed {
                records: records.to_vec(),
                fates: (0..records.len())
                    .map(|i| Fate::Written(i..i + 1))
                    .collect(),
            };
        };
        // The first stage reads the caller's slice directly; positions come from it.
        let mut states = Vec::with_capacity(records.len());
        let mut current: Vec<Record> = Vec::with_capacity(records.len());
        match call(first.as_mut(), records) {
            Ok(outcomes) => {
                for (input, outcome) in records.iter().zip(outcomes) {
                    states.push(settle(outcome, input, &mut current, first.name()));
                }
            }
            Err(e) => {
                return Processed {
                    records: Vec::new(),
                    fates: fail_all(records.len(), first.name(), &e),
                };
            }
        }
        for stage in rest {
            if current.is_empty() {
                break;
            }
            let outcomes = match call(stage.as_mut(), &current) {
                Ok(outcomes) => outcomes,
                Err(e) => {
                    tracing::warn!(error = %e, records = current.len(), "Transform failed a whole batch.");
                    // Every input still flowing fails; none of its outputs is written.
                    current.clear();
                    let reason = e.to_string();
                    for state in states.iter_mut() {
                        if matches!(state, State::Flowing { .. }) {
                            *state = State::Failed {
                                stage: stage.name().to_string(),
                                reason: reason.clone(),
                            };
                        }
                    }
                    break;
                }
            };
            let mut next = Vec::with_capacity(current.len());
            let mut outcomes = current.iter().zip(outcomes);
            for state in states.iter_mut() {
                let State::Flowing { start, end } = *state else {
                    continue;
                };
                let new_start = next.len();
                let mut failed = None;
                for (input, outcome) in outcomes.by_ref().take(end - start) {
                    match outcome {
                        Outcome::Ok(out) => next.extend(stamp(out, input)),
                        Outcome::Dropped => {}
                        Outcome::Failed(reason) => {
                            failed.get_or_insert(reason);
                        }
                    }
                }
                *state = match failed {
                    Some(reason) => {
                        next.truncate(new_start);
                        State::Failed {
                            stage: stage.name().to_string(),
                            reason,
                        }
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
        let fates = states
            .into_iter()
            .map(|state| match state {
                State::Flowing { start, end } => Fate::Written(start..end),
                State::Dropped => Fate::Dropped,
                State::Failed { stage, reason } => Fate::Failed { stage, reason },
            })
            .collect();
        Processed {
            records: current,
            fates,
        }
    }
}

/// One stage call, with the contract checked: exactly one outcome per input.
fn call(stage: &mut dyn Transform, records: &[Record]) -> Result<Vec<Outcome>, TransformError> {
    let outcomes = stage.process(records)?;
    if outcomes.len() != records.len() {
        return Err(TransformError::new(
            stage.name(),
            TransformErrorKind::Malformed,
            format!(
                "returned {} outcomes for {} records",
                outcomes.len(),
                records.len()
            ),
        ));
    }
    Ok(outcomes)
}

fn fail_all(len: usize, stage: &str, e: &TransformError) -> Vec<Fate> {
    tracing::warn!(error = %e, records = len, "Transform failed a whole batch.");
    let reason = e.to_string();
    (0..len)
        .map(|_| Fate::Failed {
            stage: stage.to_string(),
            reason: reason.clone(),
        })
        .collect()
}

/// Outputs carry their input's position, whatever the plugin set.
fn stamp(mut out: Vec<Record>, input: &Record) -> Vec<Record> {
    for r in &mut out {
        if r.position != input.position {
            r.position = input.position.clone();
        }
    }
    out
}

/// Fold a first-stage outcome into a state, appending its outputs to `current`.
fn settle(outcome: Outcome, input: &Record, current: &mut Vec<Record>, stage: &str) -> State {
    match outcome {
        Outcome::Ok(out) if out.is_empty() => State::Dropped,
        Outcome::Ok(out) => {
            let start = current.len();
            current.extend(stamp(out, input));
            State::Flowing {
                start,
                end: current.len(),
            }
        }
        Outcome::Dropped => State::Dropped,
        Outcome::Failed(reason) => State::Failed {
            stage: stage.to_string(),
            reason,
        },
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::record::Position;

    /// Doubles every record (a fan-out).
    struct Twice;
    impl Transform for Twice {
        fn name(&self) -> &str {
            "twice"
        }
        fn process(&mut self, records: &[Record]) -> Result<Vec<Outcome>, TransformError> {
            Ok(records
                .iter()
                .map(|r| Outcome::Ok(vec![r.clone(), r.clone()]))
                .collect())
        }
    }

    /// Fails records whose value is `bad`, or the whole batch when `all`.
    struct Picky {
        all: bool,
    }
    impl Transform for Picky {
        fn name(&self) -> &str {
            "picky"
        }
        fn process(&mut self, records: &[Record]) -> Result<Vec<Outcome>, TransformError> {
            if self.all {
                return Err(TransformError::new(
                    "picky",
                    TransformErrorKind::Trap,
                    "boom",
                ));
            }
            Ok(records
                .iter()
                .map(|r| match &r.value[..] {
                    b"bad" => Outcome::Failed("bad value".into()),
                    _ => Outcome::Ok(vec![r.clone()]),
                })
                .collect())
        }
    }

    fn input(values: &[&str]) -> Vec<Record> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| Record::new(v.to_string(), Position::int(Arc::from("p"), i as i64)))
            .collect()
    }

    #[test]
    fn a_fanned_out_input_is_written_whole_or_failed_whole() {
        let mut chain = Chain::new(vec![Box::new(Twice), Box::new(Picky { all: false })]);
        let input = input(&["a", "bad", "c"]);
        let out = chain.process(&input);
        assert_eq!(out.fates[0], Fate::Written(0..2));
        assert!(matches!(&out.fates[1], Fate::Failed { stage, .. } if stage == "picky"));
        assert_eq!(out.fates[2], Fate::Written(2..4));
        let positions: Vec<_> = out.records.iter().map(|r| r.position.clone()).collect();
        assert_eq!(
            positions,
            [0, 0, 2, 2].map(|i| input[i].position.clone()).to_vec()
        );
    }

    #[test]
    fn a_later_stage_failing_its_batch_leaves_nothing_to_write() {
        let mut chain = Chain::new(vec![Box::new(Twice), Box::new(Picky { all: true })]);
        let out = chain.process(&input(&["a", "b"]));
        assert!(out.records.is_empty(), "{:?}", out.records);
        assert!(
            out.fates
                .iter()
                .all(|f| matches!(f, Fate::Failed { stage, .. } if stage == "picky"))
        );
    }
}
