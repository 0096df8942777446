-- 0007_price_precision: prices per million tokens need more than four
-- decimals (gemini-1.5-flash cached is 0.01875).
ALTER TABLE model_prices
    ALTER COLUMN input_per_m  TYPE numeric(14, 6),
    ALTER COLUMN output_per_m TYPE numeric(14, 6),
    ALTER COLUMN cached_per_m TYPE numeric(14, 6);
UPDATE model_prices SET cached_per_m = 0.01875
 WHERE provider = 'google' AND model = 'gemini-1.5-flash';
