//! Typed subscriptions: a consumer group member whose events arrive decoded as the topic's
//! latest payload type, through the generated typed upcasters ([`Registry::decode_typed`]).

use super::{Delivery, SubscribeOptions, Subscription};
use crate::bus::{EventBus, GroupId};
use crate::error::Result;
use crate::publish::Producer;
use crate::registry::Registry;
use crate::typed::{Topic, Versioned};
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

/// One handed-out event and its decoded payload.
#[derive(Debug)]
pub struct TypedDelivery<T> {
    /// The payload as the latest version's type, or why it could not be decoded; the event is
    /// delivered either way, so the caller decides (ack it to skip it, or dead-letter it).
    pub payload: Result<T>,
    /// The event as stored, with what to ack it by.
    pub delivery: Delivery,
}

/// A member of a consumer group on `V::TOPIC`, yielding `V::Latest` payloads.
pub struct TypedSubscription<B: EventBus, V: Versioned> {
    sub: Subscription<B>,
    registry: Arc<Registry>,
    versions: PhantomData<fn() -> V>,
}

impl<B: EventBus, V: Versioned> TypedSubscription<B, V> {
    /// Joins `group` on `V::TOPIC` over the producer's bus; the partition count comes from the
    /// spec, everything else from `opts`. Like [`Subscription::new`] it leaves the start of a new
    /// group to the first poll; [`TypedSubscription::subscribe`] fixes it at once.
    pub fn new(
        producer: &Producer<B>,
        group: &str,
        opts: SubscribeOptions,
    ) -> Result<TypedSubscription<B, V>> {
        let partitions = producer.registry().topic(V::TOPIC)?.partitions;
        let opts = SubscribeOptions { partitions, ..opts };
        let sub = Subscription::new(producer.bus().clone(), V::TOPIC, group, opts)?;
        Ok(TypedSubscription { sub, registry: producer.registry().clone(), versions: PhantomData })
    }

    /// Joins `group` like [`TypedSubscription::new`] and fixes where the group starts before
    /// returning ([`Subscription::start`]), so no event published after this returns is skipped.
    pub async fn subscribe(
        producer: &Producer<B>,
        group: &str,
        opts: SubscribeOptions,
    ) -> Result<TypedSubscription<B, V>> {
        let mut sub = TypedSubscription::new(producer, group, opts)?;
        sub.sub.start().await?;
        Ok(sub)
    }

    /// Waits for events like [`Subscription::poll`] and decodes each one.
    pub async fn poll(&mut self) -> Result<Vec<TypedDelivery<V::Latest>>> {
        let batch = self.sub.poll().await?;
        Ok(batch
            .into_iter()
            .map(|delivery| {
                // The stored record stays with the delivery, for dead letters and logs; the decode
                // reads it in place.
                let payload =
                    self.registry.decode_typed_shared::<V>(&delivery.record).map(|(payload, _)| payload);
                TypedDelivery { payload, delivery }
            })
            .collect())
    }

    /// Marks a delivery done.
    pub fn ack<T>(&self, event: &TypedDelivery<T>) {
        self.sub.ack(&event.delivery);
    }

    /// Asks for a delivery again after `delay`.
    pub fn nack<T>(&self, event: &TypedDelivery<T>, delay: Duration) {
        self.sub.nack(&event.delivery, delay);
    }

    /// Commits acknowledged progress now.
    pub async fn commit(&mut self) -> Result<()> {
        self.sub.commit().await
    }

    /// Commits and leaves the group.
    pub async fn close(self) -> Result<()> {
        self.sub.close().await
    }

    /// The group this member belongs to.
    pub fn group(&self) -> &GroupId {
        self.sub.group()
    }

    /// The untyped subscription underneath.
    pub fn inner(&self) -> &Subscription<B> {
        &self.sub
    }
}

impl<V: Versioned> Topic<V> {
    /// Joins consumer group `group` on this topic: each poll yields the events decoded as
    /// `V::Latest` through the typed upcasters. The group's start is fixed when this returns.
    pub async fn subscribe<B: EventBus>(
        &self,
        producer: &Producer<B>,
        group: &str,
        options: SubscribeOptions,
    ) -> Result<TypedSubscription<B, V>> {
        TypedSubscription::subscribe(producer, group, options).await
    }
}
