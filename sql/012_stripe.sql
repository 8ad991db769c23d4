-- 012_stripe: Stripe names a payment itself (the Checkout Session id, kept
-- as provider_trade_no from the checkout on) and its ids run up to 255
-- characters (live session ids are already longer than 64).

ALTER TABLE payments
  MODIFY COLUMN provider_trade_no VARCHAR(255) NULL;
