//! Attempts whose claim this process made but whose reply from the API server was lost: the
//! claim may have been stored (the request shows `Executing` with the attempt's id), but this
//! process never sent the write. Such a request is recorded `Failed`, reason `NotSent`, instead of
//! being settled as a write whose outcome is unknown, and it is never sent later: a new attempt
//! needs the request back in `Pending`, which a claim stored under this attempt never is.
//!
//! Known only to this process: after a restart a request left `Executing` is settled by reading
//! the order, as any interrupted call.

use std::collections::VecDeque;
use std::sync::Mutex;

use kube::runtime::controller::Action;

use super::claim::Expect;
use super::finish::finish;
use super::{ActionError, Ctx, Verdict, reason};
use crate::crd::{ChangeOrderAction, ChangeOrderActionStatus};

/// Most attempts remembered; older ones are forgotten (and then settled by reading).
const CAPACITY: usize = 1024;

/// Attempt ids claimed but never sent, newest last.
#[derive(Debug, Default)]
pub(super) struct Unsent(Mutex<VecDeque<String>>);

impl Unsent {
    pub(super) fn remember(&self, attempt: &str) {
        let mut ids = match self.0.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if ids.len() >= CAPACITY {
            ids.pop_front();
        }
        ids.push_back(attempt.to_string());
    }

    pub(super) fn contains(&self, attempt: &str) -> bool {
        match self.0.lock() {
            Ok(g) => g.iter().any(|a| a == attempt),
            Err(poisoned) => poisoned.into_inner().iter().any(|a| a == attempt),
        }
    }

    fn forget(&self, attempt: &str) {
        let mut ids = match self.0.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        ids.retain(|a| a != attempt);
    }

    /// Whether `status` is a claim of this process that was never sent.
    pub(super) fn claimed_unsent(&self, status: &ChangeOrderActionStatus) -> bool {
        status.attempt_id.as_deref().is_some_and(|a| self.contains(a))
    }
}

/// The verdict for a claim stored but never sent.
pub fn not_sent_verdict() -> Verdict {
    Verdict::failed(
        reason::NOT_SENT,
        "the API server's reply to the claim of this request was lost, so the operator did not \
         send it: nothing was sent to the cloud. Create a new ChangeOrderAction to try again",
    )
}

/// Record a request this process claimed but never sent (see the module docs).
pub(super) async fn record_not_sent(
    action: &ChangeOrderAction,
    status: &ChangeOrderActionStatus,
    ctx: &Ctx,
    ns: &str,
) -> Result<Action, ActionError> {
    let attempt = Expect::Attempt(status.attempt_id.clone());
    let done = finish(action, &attempt, ctx, ns, not_sent_verdict(), None, None, None).await?;
    if let Some(a) = status.attempt_id.as_deref() {
        ctx.unsent.forget(a);
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::ActionPhase;

    #[test]
    fn remembers_only_unsent_attempts_and_stays_bounded() {
        let u = Unsent::default();
        let st = |a: &str| ChangeOrderActionStatus {
            phase: Some(ActionPhase::Executing),
            attempt_id: Some(a.into()),
            ..Default::default()
        };
        u.remember("a");
        assert!(u.claimed_unsent(&st("a")));
        assert!(!u.claimed_unsent(&st("b")));
        assert!(!u.claimed_unsent(&ChangeOrderActionStatus::default()));
        for i in 0..CAPACITY {
            u.remember(&i.to_string());
        }
        assert!(!u.contains("a"), "the oldest is forgotten");
        assert!(u.contains("0"));
        u.forget("0");
        assert!(!u.contains("0"));
        let v = not_sent_verdict();
        assert_eq!((v.phase, v.reason), (ActionPhase::Failed, reason::NOT_SENT));
        assert!(v.message.contains("nothing was sent to the cloud"));
    }
}
