//! Detached executions: [`Run::submit`] queues a run on the server and
//! returns its id at once; any later connection follows it by that id
//! ([`Client::get_execution`], [`Client::watch_execution`],
//! [`Client::cancel_execution`], [`Client::list_executions`],
//! [`Client::get_batch`]). The run
//! survives the client disconnecting, and a replica of the server dying.

use crate::{
    fs::{piece_data, Reassembly},
    proto, Client, Error, File, Finished, Result, Run, RunStream,
};

/// Where a detached execution is.
pub use proto::ExecutionState;

/// A detached execution as the server describes it, with all of its
/// output (every page of `GetExecution` read).
#[derive(Debug, Clone)]
pub struct Execution {
    /// The execution's id (as `Run::submit` returned it).
    pub id: String,
    /// Queued, running, finished or cancelled.
    pub state: ExecutionState,
    /// The module it runs.
    pub module_sha256: String,
    /// How many times a replica began it (2: a replica died mid-run and
    /// another ran it again from the start).
    pub attempts: u32,
    /// How it ended, once finished with a result.
    pub finished: Option<Finished>,
    /// The guest's output (bounded by the tier's output limit).
    pub stdout: Vec<u8>,
    /// The guest's error output.
    pub stderr: Vec<u8>,
    /// Files the run collected.
    pub files: Vec<File>,
    /// Set when it ended without a result (its request was refused when a
    /// replica began it).
    pub error: String,
    /// The usage record id of each attempt, in order.
    pub attempt_execution_ids: Vec<String>,
    /// Every webhook delivery attempt so far, in order.
    pub webhook_attempts: Vec<proto::WebhookAttempt>,
}

impl Execution {
    /// Nothing more will happen to it (finished or cancelled).
    pub fn is_ended(&self) -> bool {
        matches!(
            self.state,
            ExecutionState::Finished | ExecutionState::Cancelled
        )
    }
}

impl Run {
    /// Queues the run on the server and returns its execution id once it
    /// is durably queued (the module accepted); the run goes on without
    /// this client. Stdin must be given whole ([`Run::stdin`]).
    pub async fn submit(self) -> Result<String> {
        self.submit_with_webhook("").await
    }

    /// [`Run::submit`], and POST the result to `webhook_url` when it ends
    /// (signed with the account's webhook secret, see
    /// `AccountService.RotateWebhookSecret`).
    pub async fn submit_with_webhook(self, webhook_url: impl Into<String>) -> Result<String> {
        let message = proto::SubmitExecutionRequest {
            run: Some(self.run_request().await?),
            webhook_url: webhook_url.into(),
        };
        let client = self.client();
        let submitted = client
            .unary(client.execution(), message, |mut c, r| async move {
                c.submit_execution(r).await
            })
            .await?;
        Ok(submitted.execution_id)
    }
}

impl Client {
    /// The detached execution `id` with all of its output so far.
    pub async fn get_execution(&self, id: &str) -> Result<Execution> {
        let mut page_token = String::new();
        let (mut stdout, mut stderr, mut files) = (Vec::new(), Vec::new(), Reassembly::default());
        loop {
            let message = proto::GetExecutionRequest {
                execution_id: id.to_string(),
                page_token,
            };
            let page = self
                .unary(self.execution(), message, |mut c, r| async move {
                    c.get_execution(r).await
                })
                .await?;
            stdout.extend_from_slice(&page.stdout);
            stderr.extend_from_slice(&page.stderr);
            for entry in &page.files {
                files.push(entry.path.clone(), &piece_data(entry));
            }
            if !page.next_page_token.is_empty() {
                page_token = page.next_page_token;
                continue;
            }
            let summary = page
                .execution
                .ok_or_else(|| Error::Protocol("GetExecution answered no execution".into()))?;
            return Ok(Execution {
                id: summary.execution_id.clone(),
                state: summary.state(),
                module_sha256: summary.module_sha256,
                attempts: summary.attempts,
                finished: page.finished.map(Finished::from),
                stdout,
                stderr,
                files: files.finish(),
                error: page.error,
                attempt_execution_ids: page.attempt_execution_ids,
                webhook_attempts: page.webhook_attempts,
            });
        }
    }

    /// The events of detached execution `id` from its start (what was
    /// already produced first), then live until it ends. Reconnecting
    /// replays from the start again: skip what was already seen.
    pub async fn watch_execution(&self, id: &str) -> Result<RunStream> {
        let message = proto::WatchExecutionRequest {
            execution_id: id.to_string(),
        };
        let mut retries = 0;
        loop {
            let error = match self
                .execution()
                .watch_execution(self.request(message.clone()))
                .await
            {
                Ok(response) => return Ok(RunStream::from_events(response.into_inner())),
                Err(status) => Error::from(status),
            };
            let Some(wait) = self.retry_wait(&error, retries) else {
                return Err(error);
            };
            retries += 1;
            tokio::time::sleep(wait).await;
        }
    }

    /// Asks detached execution `id` to stop; the state afterwards
    /// (`Cancelled`, or `Finished` when it had already ended; a running
    /// one may still show `Running` until its replica sees the request).
    pub async fn cancel_execution(&self, id: &str) -> Result<ExecutionState> {
        let message = proto::CancelExecutionRequest {
            execution_id: id.to_string(),
        };
        let response = self
            .unary(self.execution(), message, |mut c, r| async move {
                c.cancel_execution(r).await
            })
            .await?;
        Ok(response.state())
    }

    /// A batch submitted detached (`SubmitBatch`): its cases in case order,
    /// whether all have ended, and its own webhook's delivery attempts.
    pub async fn get_batch(&self, batch_id: &str) -> Result<proto::GetBatchResponse> {
        let message = proto::GetBatchRequest {
            batch_id: batch_id.to_string(),
        };
        self.unary(self.execution(), message, |mut c, r| async move {
            c.get_batch(r).await
        })
        .await
    }

    /// One page of the caller's detached executions, newest first
    /// (`state`: only those in it; `page_size` 0: the server's default).
    pub async fn list_executions(
        &self,
        state: Option<ExecutionState>,
        page_size: u32,
        page_token: &str,
    ) -> Result<proto::ListExecutionsResponse> {
        let message = proto::ListExecutionsRequest {
            state: state.unwrap_or(ExecutionState::Unspecified) as i32,
            page_size,
            page_token: page_token.to_string(),
        };
        self.unary(self.execution(), message, |mut c, r| async move {
            c.list_executions(r).await
        })
        .await
    }
}
