//! What two agents ask in the same shape: Claude's `AskUserQuestion` and
//! OpenCode's `question` tool put questions to the user as a list of
//! {question, header, options, multiple choice}, and both keep a todo list
//! of {content, status}. The wire types and their conversion to the
//! protocol's `Question` and `PlanEntry` live here once; each agent's
//! `wire.rs` re-exports them. Lenient like the rest of the wire: a field of
//! the wrong type is absent, not a failed message.

use serde::Deserialize;
use tether_protocol::{PlanEntry, PlanStatus, Question, QuestionOption};

use super::lenient::Lenient;

/// One question asked of the user.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AskedQuestion {
    #[serde(default)]
    pub question: Lenient<String>,
    #[serde(default)]
    pub header: Lenient<String>,
    #[serde(default)]
    pub options: Lenient<Vec<Lenient<AskedOption>>>,
    /// Claude says `multiSelect`, OpenCode `multiple`.
    #[serde(default, rename = "multiSelect", alias = "multiple")]
    pub multi_select: Lenient<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct AskedOption {
    #[serde(default)]
    pub label: Lenient<String>,
    #[serde(default)]
    pub description: Lenient<String>,
}

/// One entry of a todo list.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Todo {
    #[serde(default)]
    pub content: Lenient<String>,
    /// `pending`, `in_progress`, `completed`.
    #[serde(default)]
    pub status: Lenient<String>,
}

/// The questions as the protocol states them.
pub fn questions(asked: Lenient<Vec<Lenient<AskedQuestion>>>) -> Vec<Question> {
    let each = |q: Lenient<AskedQuestion>| {
        let q = q.into_inner().unwrap_or_default();
        let options = q.options.into_inner().unwrap_or_default().into_iter().map(|o| {
            let o = o.into_inner().unwrap_or_default();
            QuestionOption { label: o.label.into_inner().unwrap_or_default(), description: o.description.into_inner() }
        });
        Question {
            prompt: q.question.into_inner().unwrap_or_default(),
            header: q.header.into_inner(),
            options: options.collect(),
            multi_select: q.multi_select.into_inner().unwrap_or(false),
        }
    };
    asked.into_inner().unwrap_or_default().into_iter().map(each).collect()
}

/// A todo list as a plan.
pub fn plan(todos: Lenient<Vec<Lenient<Todo>>>) -> Vec<PlanEntry> {
    let each = |t: Lenient<Todo>| {
        let t = t.into_inner().unwrap_or_default();
        let status = match t.status.get().map(String::as_str) {
            Some("completed") => PlanStatus::Completed,
            Some("in_progress") => PlanStatus::InProgress,
            _ => PlanStatus::Pending,
        };
        PlanEntry { text: t.content.into_inner().unwrap_or_default(), status }
    };
    todos.into_inner().unwrap_or_default().into_iter().map(each).collect()
}
