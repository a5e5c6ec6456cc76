//! What travels on the bus: a [`Batch`] of samples and events.

use mw_model::{Event, Sample};

/// Samples and events published together. Order within each list is the order the source
/// produced them; the bus keeps it (see the crate docs).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Batch {
    pub samples: Vec<Sample>,
    pub events: Vec<Event>,
}

impl Batch {
    pub fn from_samples(samples: Vec<Sample>) -> Batch {
        Batch {
            samples,
            events: Vec::new(),
        }
    }

    pub fn from_events(events: Vec<Event>) -> Batch {
        Batch {
            samples: Vec::new(),
            events,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty() && self.events.is_empty()
    }
}

/// What a sink wants to receive. A batch with nothing the sink wants is not queued for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Wants {
    #[default]
    Samples,
    Events,
    Both,
}

impl Wants {
    /// True if `batch` carries anything of what is wanted.
    pub fn accepts(self, batch: &Batch) -> bool {
        match self {
            Wants::Samples => !batch.samples.is_empty(),
            Wants::Events => !batch.events.is_empty(),
            Wants::Both => !batch.is_empty(),
        }
    }
}
