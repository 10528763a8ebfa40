//! Telling the operator about events: the `[events] command` hook, run once per event with
//! the event as JSON on its standard input, and an optional mail through the configured MTA.
//!
//! One task works through a bounded queue in order, so a slow or hanging hook never blocks a
//! build: the command is killed after `timeout_secs`, a failure is logged and the next event
//! goes on; if the queue is full (a hook far slower than the events), events are dropped
//! from the hook, with a warning, and stay in the store, the feeds and the API.

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::compose::Outgoing;
use crate::compose::message::format_message;
use crate::config::EventsConfig;
use crate::model::event::Event;
use crate::model::{Clock, MailAddress};
use crate::publish::json::EventJson;
use crate::send::SmtpSender;

/// Events waiting for the hook; more are dropped from it.
const QUEUE: usize = 1000;
/// What is kept of a failing hook's standard error, for the log.
const MAX_STDERR: usize = 2000;

/// The handle builds hand their new events to.
#[derive(Clone)]
pub struct Notifier {
    queue: mpsc::Sender<Event>,
}

impl Notifier {
    /// Starts the notifier task on the current runtime; `None` when nothing is configured.
    pub fn start(
        config: &EventsConfig,
        smtp: SmtpSender,
        from: MailAddress,
        site_name: String,
        clock: Arc<dyn Clock>,
    ) -> Option<Notifier> {
        if config.command.is_empty() && config.mail_to.is_none() {
            return None;
        }
        let (queue, events) = mpsc::channel(QUEUE);
        let hook = Hook {
            command: config.command.clone(),
            timeout: Duration::from_secs(config.timeout_secs.0),
            mail_to: config.mail_to.clone(),
            smtp,
            from,
            site_name,
            clock,
        };
        tokio::spawn(hook.run(events));
        Some(Notifier { queue })
    }

    /// Queues events for the hook; never waits.
    pub fn notify(&self, events: &[Event]) {
        for e in events {
            if self.queue.try_send(e.clone()).is_err() {
                warn!(event = e.id, "the event hook is behind; event {} not handed to it", e.id);
            }
        }
    }
}

struct Hook {
    command: Vec<String>,
    timeout: Duration,
    mail_to: Option<MailAddress>,
    smtp: SmtpSender,
    from: MailAddress,
    site_name: String,
    clock: Arc<dyn Clock>,
}

impl Hook {
    async fn run(self, mut events: mpsc::Receiver<Event>) {
        while let Some(event) = events.recv().await {
            let json = match serde_json::to_string(&EventJson::of(&event)) {
                Ok(j) => j,
                Err(e) => {
                    warn!("event {}: cannot write it as JSON: {e}", event.id);
                    continue;
                }
            };
            if !self.command.is_empty() {
                match self.run_command(&event, &json).await {
                    Ok(()) => info!(event = event.id, "event hook ran"),
                    Err(why) => warn!(event = event.id, "event hook failed: {why}"),
                }
            }
            if let Some(to) = &self.mail_to {
                match self.mail(&event, &json, to).await {
                    Ok(()) => info!(event = event.id, to = %to, "event mailed"),
                    Err(why) => warn!(event = event.id, "mailing the event failed: {why}"),
                }
            }
        }
    }

    async fn run_command(&self, event: &Event, json: &str) -> Result<(), String> {
        let mut child = tokio::process::Command::new(&self.command[0])
            .args(&self.command[1..])
            .env("FATHOMETER_EVENT_KIND", event.kind.as_str())
            .env("FATHOMETER_EVENT_ID", event.id.to_string())
            // Only the daemon speaks to systemd.
            .env_remove(super::systemd::NOTIFY_SOCKET)
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.command[0]))?;
        let mut stdin = child.stdin.take();
        let mut stderr = child.stderr.take();
        let work = async {
            if let Some(mut input) = stdin.take() {
                // A hook that does not read its input is its own business.
                let _ = input.write_all(json.as_bytes()).await;
                let _ = input.write_all(b"\n").await;
            }
            let mut err = Vec::new();
            if let Some(stream) = stderr.as_mut() {
                let _ = stream.take(MAX_STDERR as u64).read_to_end(&mut err).await;
            }
            (child.wait().await, err)
        };
        match tokio::time::timeout(self.timeout, work).await {
            Err(_) => Err(format!("killed after {} s", self.timeout.as_secs())),
            Ok((Err(e), _)) => Err(format!("waiting for it: {e}")),
            Ok((Ok(status), _)) if status.success() => Ok(()),
            Ok((Ok(status), err)) => {
                // The hook's words go to the journal: no control characters.
                let said: String = String::from_utf8_lossy(&err)
                    .trim()
                    .chars()
                    .filter(|c| !c.is_control())
                    .collect();
                Err(format!("{status}: {said}"))
            }
        }
    }

    async fn mail(&self, event: &Event, json: &str, to: &MailAddress) -> Result<(), String> {
        let now = self.clock.now();
        let subject: String = format!("[{}] {}", self.site_name, event.title())
            .chars()
            .filter(|c| !c.is_control())
            .collect();
        let body = format!(
            "{}\n\n{}\n\nAt: {}\nRecorded: {}\n\n{json}\n",
            event.title(),
            event.detail,
            crate::publish::json::rfc3339(event.at),
            crate::publish::json::rfc3339(event.recorded_at),
        );
        let message_id = format!("<event-{}-{now}@{}>", event.id, self.from.domain());
        let date = SystemTime::UNIX_EPOCH + Duration::from_secs(now.max(0) as u64);
        let message = format_message(
            &self.site_name,
            self.from.as_str(),
            to.as_str(),
            Some(&subject),
            body,
            &message_id,
            date,
        )
        .map_err(|e| e.to_string())?;
        let outgoing = Outgoing {
            envelope_from: self.from.as_str().to_owned(),
            to: to.as_str().to_owned(),
            message,
        };
        self.smtp.send(&outgoing).await.map_err(|e| e.to_string())
    }
}
