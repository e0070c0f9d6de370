/* Linked with one layer's whole library and the layers below it (see
 * tests/CMakeLists.txt): linking at all is the test. */
int main(void)
{
	return 0;
}
