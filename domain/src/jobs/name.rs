//! The name of a user's role job, stream `jobname-<owner>@<name>`: held by one job at a time, so
//! no two of a user's role jobs hold the same name. A stream id cannot hold `~`, which a job name
//! may: it is written `:` in the stream id (which no job name holds), see [`job_name_key`].
//!
//! Lifecycle: unclaimed → held by a job (`JobNameClaimed`, appended in the same atomic append as
//! the job's `JobSubmitted`) → free again (`JobNameReleased`) → held by another job… A name is
//! never released by its job's end: only on request (`DELETE /v1/jobs/{id}/name`), so a finished
//! job keeps it, as OpenPAI's did.
//!
//! Does not own: the job itself (`job`), who may release a name (`commands`: whoever may stop
//! its job), the rules of a name's text (`roles::check_job_name`).

use crate::aggregate::{Aggregate, DomainEvent};
use crate::error::DomainError;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The id of the stream of `owner`'s job name `name` (after its category, `jobname`): the name
/// with `~` written `:`, after the owner and `@` (a user's name holds neither).
pub fn job_name_key(owner: &str, name: &str) -> String {
    format!("{owner}@{}", name.replace('~', ":"))
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobName {
    pub owner: Option<String>,
    pub name: Option<String>,
    /// The job holding it now, if one does.
    pub holder: Option<Uuid>,
}

#[derive(Clone, Debug)]
pub enum JobNameCommand {
    /// For a job being submitted under this name.
    Claim {
        owner: String,
        name: String,
        job_id: Uuid,
    },
    /// By the job holding it.
    Release { job_id: Uuid },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event_type", content = "data")]
pub enum JobNameEvent {
    JobNameClaimed {
        owner: String,
        name: String,
        job_id: Uuid,
    },
    JobNameReleased {
        job_id: Uuid,
    },
}

impl DomainEvent for JobNameEvent {
    fn event_type(&self) -> &'static str {
        match self {
            JobNameEvent::JobNameClaimed { .. } => "JobNameClaimed",
            JobNameEvent::JobNameReleased { .. } => "JobNameReleased",
        }
    }
}

impl Aggregate for JobName {
    type Command = JobNameCommand;
    type Event = JobNameEvent;
    const CATEGORY: &'static str = "jobname";

    fn handle(&self, command: JobNameCommand) -> Result<Vec<JobNameEvent>, DomainError> {
        match command {
            JobNameCommand::Claim {
                owner,
                name,
                job_id,
            } => match self.holder {
                Some(holder) => Err(DomainError::conflict(
                    "job_name_taken",
                    format!(
                        "{owner} has a job named {name} already (job {holder}): choose another name, or stop that job and release its name (DELETE /v1/jobs/{holder}/name)"
                    ),
                )),
                None => Ok(vec![JobNameEvent::JobNameClaimed {
                    owner,
                    name,
                    job_id,
                }]),
            },
            JobNameCommand::Release { job_id } => {
                if self.holder == Some(job_id) {
                    Ok(vec![JobNameEvent::JobNameReleased { job_id }])
                } else {
                    Err(DomainError::conflict(
                        "job_name_released",
                        format!(
                            "job {job_id} does not hold the name {}: it was released already",
                            self.name.as_deref().unwrap_or("")
                        ),
                    ))
                }
            }
        }
    }

    fn apply(&mut self, event: &JobNameEvent) {
        match event {
            JobNameEvent::JobNameClaimed {
                owner,
                name,
                job_id,
            } => {
                self.owner = Some(owner.clone());
                self.name = Some(name.clone());
                self.holder = Some(*job_id);
            }
            JobNameEvent::JobNameReleased { .. } => self.holder = None,
        }
    }

    fn exists(&self) -> bool {
        self.owner.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::given;

    fn claim(job_id: Uuid) -> JobNameCommand {
        JobNameCommand::Claim {
            owner: "ann".into(),
            name: "train".into(),
            job_id,
        }
    }

    fn claimed(job_id: Uuid) -> JobNameEvent {
        JobNameEvent::JobNameClaimed {
            owner: "ann".into(),
            name: "train".into(),
            job_id,
        }
    }

    #[test]
    fn a_name_is_held_by_one_job_until_it_is_released() {
        let (first, second) = (Uuid::from_u128(1), Uuid::from_u128(2));
        given::<JobName>(&[])
            .when(claim(first))
            .then(vec![claimed(first)]);
        given::<JobName>(&[claimed(first)])
            .when(claim(second))
            .refused(DomainError::conflict(
                "job_name_taken",
                format!("ann has a job named train already (job {first}): choose another name, or stop that job and release its name (DELETE /v1/jobs/{first}/name)"),
            ));
        let released = JobNameEvent::JobNameReleased { job_id: first };
        given::<JobName>(&[claimed(first)])
            .when(JobNameCommand::Release { job_id: first })
            .then(vec![released.clone()]);
        // Free again: another job takes it.
        given::<JobName>(&[claimed(first), released.clone()])
            .when(claim(second))
            .then(vec![claimed(second)]);
    }

    #[test]
    fn only_the_job_holding_a_name_releases_it() {
        let (first, second) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let refused = |job_id: Uuid| {
            DomainError::conflict(
                "job_name_released",
                format!("job {job_id} does not hold the name train: it was released already"),
            )
        };
        given::<JobName>(&[claimed(first)])
            .when(JobNameCommand::Release { job_id: second })
            .refused(refused(second));
        let released = JobNameEvent::JobNameReleased { job_id: first };
        given::<JobName>(&[claimed(first), released])
            .when(JobNameCommand::Release { job_id: first })
            .refused(refused(first));
    }

    #[test]
    fn a_names_stream_id_holds_no_tilde() {
        assert_eq!(job_name_key("ann", "a~b.c-d"), "ann@a:b.c-d");
        assert_ne!(job_name_key("ann", "a~b"), job_name_key("ann", "a-b"));
    }
}
