package main

import (
	"github.com/spf13/pflag"

	"github.com/tokenledger/tokenledger/webhooks"
)

// webhookAllowPrivateUsage is the help of --webhook-allow-private.
const webhookAllowPrivateUsage = "let webhook endpoints be loopback, private or link-local addresses (refused by default: server-side request forgery)"

// bindWebhookFlags binds the webhook dispatcher's settings.
func bindWebhookFlags(f *pflag.FlagSet, c *webhooks.Config) {
	f.BoolVar(&c.AllowPrivateTargets, "webhook-allow-private", c.AllowPrivateTargets, webhookAllowPrivateUsage)
	dayDurationVar(f, &c.RetryPeriod, "webhook-retry-period", c.RetryPeriod, "how long a webhook delivery is retried before it is marked failed and its endpoint disabled")
	f.DurationVar(&c.BackoffInitial, "webhook-backoff-initial", c.BackoffInitial, "pause after a failed webhook delivery attempt; doubles with each failure up to --webhook-backoff-max")
	f.DurationVar(&c.BackoffMax, "webhook-backoff-max", c.BackoffMax, "longest pause between webhook delivery attempts")
	f.DurationVar(&c.Timeout, "webhook-timeout", c.Timeout, "longest a webhook delivery attempt may take (connect, send, answer)")
	f.IntVar(&c.Concurrency, "webhook-concurrency", c.Concurrency, "webhook deliveries attempted at once (each to another endpoint or token; one token's go one at a time, in stream order)")
}
