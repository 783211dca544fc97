-- Bad input is a clear ERROR that names what is wrong.
\set VERBOSITY default

-- missing relation, missing or mistyped columns
SELECT dmf_train('no_such_table');
SELECT dmf_train('ratings', 'uid');
SELECT dmf_train('ratings', item_column => 'iid');
SELECT dmf_train('ratings', rating_column => 'stars');
CREATE TABLE text_ids (user_id text, item_id int, rating int);
INSERT INTO text_ids VALUES ('a', 1, 1);
SELECT dmf_train('text_ids');
CREATE TABLE float_ids (user_id int, item_id float8, rating int);
SELECT dmf_train('float_ids');
CREATE TABLE text_ratings (user_id int, item_id int, rating text);
SELECT dmf_train('text_ratings');

-- NULL arguments
SELECT dmf_train(NULL);
SELECT dmf_train('ratings', NULL);
SELECT dmf_train('ratings', options => NULL);

-- not enough data
CREATE TABLE empty_ratings (user_id int, item_id int, rating int);
SELECT dmf_train('empty_ratings');
INSERT INTO empty_ratings VALUES (1, 1, NULL), (NULL, 2, 3);
SELECT dmf_train('empty_ratings');
CREATE TABLE one_rating (user_id int, item_id int, rating int);
INSERT INTO one_rating VALUES (1, 1, 4);
SELECT dmf_train('one_rating');
CREATE TABLE one_user (user_id int, item_id int, rating int);
INSERT INTO one_user SELECT 1, g, 1 + g % 5 FROM generate_series(1, 50) g;
SELECT dmf_train('one_user');
CREATE TABLE one_item (user_id int, item_id int, rating int);
INSERT INTO one_item SELECT g, 1, 1 + g % 5 FROM generate_series(1, 50) g;
SELECT dmf_train('one_item');
CREATE TABLE same_rating (user_id int, item_id int, rating int);
INSERT INTO same_rating SELECT g % 7, g % 11, 3 FROM generate_series(1, 77) g;
SELECT dmf_train('same_rating');

-- bad ratings
CREATE TABLE bad_ratings AS SELECT user_id, item_id, rating::float8 AS rating FROM ratings_train;
INSERT INTO bad_ratings VALUES (1, 100000, 'NaN');
SELECT dmf_train('bad_ratings');
UPDATE bad_ratings SET rating = 'Infinity' WHERE item_id = 100000;
SELECT dmf_train('bad_ratings');
UPDATE bad_ratings SET rating = 7 WHERE item_id = 100000;
SELECT dmf_train('bad_ratings', options => '{"rating_min": 1, "rating_max": 5}');

-- duplicate (user, item) pairs: no single target
CREATE TABLE dup_ratings AS SELECT * FROM ratings_train;
INSERT INTO dup_ratings VALUES (3, 5, 1), (3, 5, 2);
SELECT dmf_train('dup_ratings');

-- options: unknown keys, wrong types, out of range
SELECT dmf_train('ratings', options => '{"epoch": 3}');
SELECT dmf_train('ratings', options => '[1, 2]');
SELECT dmf_train('ratings', options => '{"epochs": "3"}');
SELECT dmf_train('ratings', options => '{"epochs": 2.5}');
SELECT dmf_train('ratings', options => '{"epochs": 0}');
SELECT dmf_train('ratings', options => '{"epochs": null}');
SELECT dmf_train('ratings', options => '{"dim": -4}');
SELECT dmf_train('ratings', options => '{"dim": 100000}');
SELECT dmf_train('ratings', options => '{"layers": 64}');
SELECT dmf_train('ratings', options => '{"layers": [64, 0]}');
SELECT dmf_train('ratings', options => '{"layers": [1000000000]}');
SELECT dmf_train('ratings', options => '{"layers": [8, 8, 8, 8, 8, 8, 8, 8]}');
SELECT dmf_train('ratings', options => '{"layers": [64], "user_layers": [32]}');
SELECT dmf_train('ratings', options => '{"activation": "gelu"}');
SELECT dmf_train('ratings', options => '{"activation": 1}');
SELECT dmf_train('ratings', options => '{"fold_in_training": "sometimes"}');
SELECT dmf_train('ratings', options => '{"storage": "float16"}');
SELECT dmf_train('ratings', options => '{"schedule": "sideways"}');
SELECT dmf_train('ratings', options => '{"learning_rate": 0}');
SELECT dmf_train('ratings', options => '{"learning_rate": -0.1}');
SELECT dmf_train('ratings', options => '{"l2": -1}');
SELECT dmf_train('ratings', options => '{"dropout": 1}');
SELECT dmf_train('ratings', options => '{"batch_size": -1}');
SELECT dmf_train('ratings', options => '{"patience": 0}');
SELECT dmf_train('ratings', options => '{"plateau_drops": -1}');
SELECT dmf_train('ratings', options => '{"plateau_factor": 1.5}');
SELECT dmf_train('ratings', options => '{"threads": -1}');
SELECT dmf_train('ratings', options => '{"time_limit": 0}');
SELECT dmf_train('ratings', options => '{"time_limit": -30}');
SELECT dmf_train('ratings', options => '{"time_limit": "60"}');
SELECT dmf_train('ratings', options => '{"time_limit": null}');
SELECT dmf_train('ratings', options => '{"seed": -1}');
SELECT dmf_train('ratings', options => '{"verbose": "yes"}');
SELECT dmf_train('ratings', options => '{"validation_fraction": 0.9}');
SELECT dmf_train('ratings', options => '{"rating_min": 5, "rating_max": 1}');
SELECT dmf_train('ratings', options => '{"validation": "no_such_table"}');
SELECT dmf_train('ratings', options => '{"validation": "ratings", "validation_fraction": 0.1}');
SELECT dmf_train('ratings', options => '{"validation": 42}');
CREATE TABLE strangers (user_id int, item_id int, rating int);
INSERT INTO strangers VALUES (100000, 100000, 3);
SELECT dmf_train('ratings', options => '{"validation": "strangers"}');

-- memory guard: refuse before allocating
SET dmf.max_memory = '1MB';
SELECT dmf_train('ratings', options => '{"layers": [4096]}');
RESET dmf.max_memory;
-- a model that could not be a bytea (1 GB) is refused before training too
SET dmf.max_memory = '2147483647kB';
SELECT dmf_train('ratings', options => '{"layers": [65536, 65536], "dim": 16}');
RESET dmf.max_memory;

-- privileges: training reads as the caller
CREATE ROLE dmf_reader;
CREATE TABLE secret_ratings AS SELECT * FROM ratings;
GRANT SELECT ON ratings TO dmf_reader;
SET ROLE dmf_reader;
SELECT dmf_train('secret_ratings');
SELECT length(dmf_train('ratings', options => test_options('{"epochs": 1}'))) > 0 AS can_train_readable;
RESET ROLE;
DROP OWNED BY dmf_reader;
DROP ROLE dmf_reader;
