//! A job's transforms applied in order: the one implementation of the chain and its
//! dead-letter rule, used by the runtime and by every tool that runs transforms.
//!
//! The rule: an input record is the unit. Each output of every stage carries its original
//! input's position (stamped here, whatever the plugin returned). An input whose outputs are all
//! dropped (or which produced none) is [`Fate::Dropped`]. If a stage fails any output of an
//! input — a per-record failure, a failed batch call, or a malformed answer — the whole input
//! fails: none of its outputs go on, and the input goes to the dead-letter sink as it entered the
//! chain, with the stage's name and the reason. So an input is written, dropped or
//! dead-lettered, never part of each, and a replay after a crash decides the same way. A stage
//! call that fails as a whole is narrowed down to the records that fail it ([`narrowed`]): one
//! poison record does not dead-letter its batch.

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
        self.process_observed(records, |_, _| {})
    }

    /// [`Chain::process`], showing `observe` what each stage passed on (by the stage's name):
    /// what `sluice tap` samples.
    pub fn process_observed(
        &mut self,
        records: &[Record],
        mut observe: impl FnMut(&str, &[Record]),
    ) -> Processed {
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
        let outcomes = narrowed(first.as_mut(), records);
        for (input, outcome) in records.iter().zip(outcomes) {
            states.push(settle(outcome, input, &mut current, first.name()));
        }
        observe(first.name(), &current);
        for stage in rest {
            if current.is_empty() {
                break;
            }
            let outcomes = narrowed(stage.as_mut(), &current);
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
            observe(stage.name(), &current);
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

/// One stage call that fails only the records that make it fail: a call that fails as a whole
/// (a trap, a deadline, a malformed answer) is split in halves and each half called again, down
/// to the single records that fail alone, which get [`Outcome::Failed`] with the error. One
/// poison record among `n` costs about `log2(n)` extra failing calls, not `n` dead letters.
/// The splits are deterministic, so a replay after a crash decides the same way. The failing
/// calls are bounded (`2·log2(n) + 4` per batch: a plugin that fails everything is not called
/// `2n` times); past that budget, each part still untried fails as a whole.
fn narrowed(stage: &mut dyn Transform, records: &[Record]) -> Vec<Outcome> {
    let bits = (usize::BITS - records.len().leading_zeros()) as usize;
    let mut budget = 2 * bits + 4;
    let mut outcomes = Vec::with_capacity(records.len());
    narrow(stage, records, &mut budget, &mut outcomes);
    outcomes
}

fn narrow(
    stage: &mut dyn Transform,
    records: &[Record],
    budget: &mut usize,
    out: &mut Vec<Outcome>,
) {
    let e = match call(stage, records) {
        Ok(outcomes) => return out.extend(outcomes),
        Err(e) => e,
    };
    if records.len() > 1 && *budget > 0 {
        *budget -= 1;
        tracing::debug!(error = %e, records = records.len(), "Transform failed a batch; calling each half alone.");
        let (left, right) = records.split_at(records.len() / 2);
        narrow(stage, left, budget, out);
        narrow(stage, right, budget, out);
        return;
    }
    tracing::warn!(error = %e, records = records.len(), "Transform failed these records; they go to the dead letter.");
    let reason = e.to_string();
    out.extend(records.iter().map(|_| Outcome::Failed(reason.clone())));
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

    /// Traps on the whole call when any record's value is `poison` (a plugin that panics or
    /// loops on one input); counts its calls.
    struct Trapping {
        calls: usize,
        failed_calls: usize,
    }
    impl Transform for Trapping {
        fn name(&self) -> &str {
            "trapping"
        }
        fn process(&mut self, records: &[Record]) -> Result<Vec<Outcome>, TransformError> {
            self.calls += 1;
            if records.iter().any(|r| &r.value[..] == b"poison") {
                self.failed_calls += 1;
                return Err(TransformError::new(
                    "trapping",
                    TransformErrorKind::Trap,
                    "unreachable executed",
                ));
            }
            Ok(records
                .iter()
                .map(|r| Outcome::Ok(vec![r.clone()]))
                .collect())
        }
    }

    fn values(n: usize, poison: &[usize]) -> Vec<String> {
        (0..n)
            .map(|i| {
                if poison.contains(&i) {
                    "poison".to_string()
                } else {
                    format!("v{i}")
                }
            })
            .collect()
    }

    #[test]
    fn one_poison_record_fails_alone_in_log_n_calls() {
        for (stages, at) in [(1, 0), (1, 617), (2, 999)] {
            let values = values(1000, &[at]);
            let refs: Vec<&str> = values.iter().map(String::as_str).collect();
            let input = input(&refs);
            let mut trapping = Trapping {
                calls: 0,
                failed_calls: 0,
            };
            let out = if stages == 1 {
                Chain::new(vec![Box::new(Trapping {
                    calls: 0,
                    failed_calls: 0,
                })])
                .process(&input)
            } else {
                // The poison meets the trap in a later stage, after a fan-out.
                Chain::new(vec![
                    Box::new(Twice),
                    Box::new(Trapping {
                        calls: 0,
                        failed_calls: 0,
                    }),
                ])
                .process(&input)
            };
            let failed: Vec<usize> = out
                .fates
                .iter()
                .enumerate()
                .filter(|(_, f)| matches!(f, Fate::Failed { reason, .. } if reason.contains("unreachable")))
                .map(|(i, _)| i)
                .collect();
            assert_eq!(failed, vec![at], "only the poison record fails");
            assert_eq!(out.records.len(), 999 * stages);
            // The same again, counting the calls.
            let mut outcomes = narrowed(&mut trapping, &input);
            assert!(matches!(outcomes.remove(at), Outcome::Failed(_)));
            assert!(
                trapping.failed_calls <= 11,
                "{} failing calls",
                trapping.failed_calls
            );
            assert!(trapping.calls <= 22, "{} calls", trapping.calls);
        }
    }

    #[test]
    fn a_stage_that_fails_everything_is_called_a_bounded_number_of_times() {
        let values = values(1000, &(0..1000).collect::<Vec<_>>());
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        let mut trapping = Trapping {
            calls: 0,
            failed_calls: 0,
        };
        let outcomes = narrowed(&mut trapping, &input(&refs));
        assert_eq!(outcomes.len(), 1000);
        assert!(outcomes.iter().all(|o| matches!(o, Outcome::Failed(_))));
        // A budget of 2·10 + 4 splits, each making two calls, after the first.
        assert!(trapping.calls <= 1 + 2 * 24, "{} calls", trapping.calls);
    }

    #[test]
    fn several_poison_records_fail_and_nothing_else_does() {
        let values = values(300, &[3, 150, 151, 299]);
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        let mut chain = Chain::new(vec![Box::new(Trapping {
            calls: 0,
            failed_calls: 0,
        })]);
        let out = chain.process(&input(&refs));
        let failed: Vec<usize> = out
            .fates
            .iter()
            .enumerate()
            .filter(|(_, f)| matches!(f, Fate::Failed { .. }))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(failed, vec![3, 150, 151, 299]);
        assert_eq!(out.records.len(), 296);
    }
}
