"""Django 3.2 through Sluice in transaction pooling, configured as operators run it behind a pooler
(DISABLE_SERVER_SIDE_CURSORS): migrate, then ORM CRUD, atomic blocks with savepoints, select_related, time zones,
and concurrent select_for_update increments that lose no update."""

import datetime
import threading
import unittest

import django

from client_fixture import SluiceTestCase
from sluice_harness import TEST_DATABASE, TEST_PASSWORD, TEST_USER

THREADS = 8
INCREMENTS = 25


def configure_django(port):
    from django.conf import settings  # lazy: unittest's loader must not touch an unconfigured settings object
    settings.configure(
        DEBUG=False,
        USE_TZ=True,
        TIME_ZONE="UTC",
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "django_app.apps.DjangoAppConfig"],
        DATABASES={"default": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "NAME": TEST_DATABASE,
            "USER": TEST_USER,
            "PASSWORD": TEST_PASSWORD,
            "CONN_MAX_AGE": 0,
            "DISABLE_SERVER_SIDE_CURSORS": True,
            "OPTIONS": {"connect_timeout": 10},
        }},
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
    )
    django.setup()


class DjangoTest(SluiceTestCase):
    sluice_settings = {"query_wait_timeout": "30"}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        configure_django(cls.sluice.port)
        from django.core.management import call_command
        call_command("migrate", verbosity=0, interactive=False)

    def setUp(self):
        super().setUp()
        from django_app.models import Author, Book, Counter
        self.Author, self.Book, self.Counter = Author, Book, Counter
        Book.objects.all().delete()
        Author.objects.all().delete()
        Counter.objects.all().delete()

    def tearDown(self):
        from django.db import connections
        connections.close_all()
        super().tearDown()

    def test_migrate_created_the_app_tables_and_recorded_the_migration(self):
        from django.db import connection
        from django.db.migrations.recorder import MigrationRecorder
        tables = set(connection.introspection.table_names())
        self.assertTrue({"django_app_author", "django_app_book", "django_app_counter", "auth_user"} <= tables)
        self.assertTrue(MigrationRecorder.Migration.objects.filter(app="django_app", name="0001_initial").exists())

    def test_create_filter_update_delete(self):
        Author, Book = self.Author, self.Book
        ann = Author.objects.create(name="Ann")
        Author.objects.bulk_create([Author(name=f"author {i}") for i in range(50)])
        Book.objects.bulk_create([Book(author=ann, title=f"book {i}", pages=i * 10) for i in range(20)])
        self.assertEqual(Author.objects.count(), 51)
        self.assertEqual(Book.objects.filter(author__name="Ann", pages__gte=100).count(), 10)
        self.assertEqual(Book.objects.filter(pages__lt=50).update(pages=1), 5)
        self.assertEqual(Book.objects.filter(pages=1).count(), 5)
        ann.name = "Ann B."
        ann.save()
        self.assertEqual(Author.objects.get(pk=ann.pk).name, "Ann B.")
        deleted, per_model = Author.objects.filter(name="Ann B.").delete()
        self.assertEqual(per_model, {"django_app.Book": 20, "django_app.Author": 1})
        self.assertEqual(Book.objects.count(), 0)
        self.assert_log_clean()

    def test_atomic_block_rolls_back_on_exception_and_savepoints_keep_the_outer_work(self):
        from django.db import IntegrityError, transaction
        Author = self.Author
        with self.assertRaises(RuntimeError):
            with transaction.atomic():
                Author.objects.create(name="gone")
                raise RuntimeError("roll back")
        self.assertFalse(Author.objects.filter(name="gone").exists())
        with transaction.atomic():
            Author.objects.create(name="outer")
            with self.assertRaises(IntegrityError):
                with transaction.atomic():  # a savepoint
                    Author.objects.create(name="outer")
            Author.objects.create(name="after the savepoint")
        self.assertEqual(sorted(Author.objects.values_list("name", flat=True)), ["after the savepoint", "outer"])

    def test_select_related_fetches_books_with_authors_in_one_query(self):
        from django.db import connection
        from django.test.utils import CaptureQueriesContext
        Author, Book = self.Author, self.Book
        for a in range(3):
            author = Author.objects.create(name=f"writer {a}")
            Book.objects.bulk_create([Book(author=author, title=f"w{a} b{b}") for b in range(4)])
        with CaptureQueriesContext(connection) as queries:
            pairs = sorted((b.title, b.author.name) for b in Book.objects.select_related("author"))
        self.assertEqual(len(queries), 1)
        self.assertEqual(len(pairs), 12)
        self.assertTrue(all(title.startswith("w" + name[-1]) for title, name in pairs))

    def test_aware_datetimes_round_trip_in_utc(self):
        from django.db import connection
        born = datetime.datetime(1970, 5, 17, 8, 30, tzinfo=datetime.timezone(datetime.timedelta(hours=5, minutes=45)))
        author = self.Author.objects.create(name="zoned", born=born)
        loaded = self.Author.objects.get(pk=author.pk).born
        self.assertEqual(loaded, born)
        self.assertEqual(loaded.utcoffset(), datetime.timedelta(0))
        with connection.cursor() as cur:
            cur.execute("SELECT current_setting('TimeZone')")
            self.assertEqual(cur.fetchone()[0], "UTC")

    def test_concurrent_select_for_update_increments_lose_no_update(self):
        from django.db import connections, transaction
        Counter = self.Counter
        counter = Counter.objects.create(name="hits")
        errors = []

        def worker():
            try:
                for _ in range(INCREMENTS):
                    with transaction.atomic():
                        row = Counter.objects.select_for_update().get(pk=counter.pk)
                        row.value += 1
                        row.save(update_fields=["value"])
            except Exception as e:  # reported below with the others
                errors.append(repr(e))
            finally:
                connections.close_all()

        threads = [threading.Thread(target=worker) for _ in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertFalse(any(t.is_alive() for t in threads), "workers still running after 120 s")
        self.assertEqual(errors, [])
        self.assertEqual(Counter.objects.get(pk=counter.pk).value, THREADS * INCREMENTS)


if __name__ == "__main__":
    unittest.main()
