//! The work area's audited events.

use crate::audit::Action;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkAction {
    ProjectCreated,
    ProjectUpdated,
    ProjectDeleted,
    DocumentAttached,
    TaskCreated,
    TaskUpdated,
    TaskDeleted,
    WorkOrderCreated,
    WorkOrderUpdated,
    WorkOrderDeleted,
}

impl Action for WorkAction {
    fn name(self) -> &'static str {
        match self {
            Self::ProjectCreated => "project.created",
            Self::ProjectUpdated => "project.updated",
            Self::ProjectDeleted => "project.deleted",
            Self::DocumentAttached => "project.document_attached",
            Self::TaskCreated => "task.created",
            Self::TaskUpdated => "task.updated",
            Self::TaskDeleted => "task.deleted",
            Self::WorkOrderCreated => "work_order.created",
            Self::WorkOrderUpdated => "work_order.updated",
            Self::WorkOrderDeleted => "work_order.deleted",
        }
    }
}

/// Writes the audit row of a change the caller made, in the change's transaction.
pub(crate) use crate::audit::caller_did as record;
